{#- The nightly window of an incremental model on the lake's landing date (README "Incremental models"):
    from --vars '{backfill_from: 2026-10-01}' when given, else the model's own latest stored landed_date minus
    var lookback_days (late files). An empty table reads everything. A model downstream of stg_events computes its
    window from its own stored rows: they landed no later than stg_events' rows, so its window starts no later
    than stg_events' did, and stg_events changes no row that landed before its own window. -#}
{% macro landed_window() -%}
    {%- if var('backfill_from', none) -%} cast('{{ var('backfill_from') }}' as date)
    {%- else -%} coalesce((select max(landed_date) - {{ var('lookback_days', 3) }} from {{ this }}), date '0001-01-01')
    {%- endif -%}
{%- endmacro %}

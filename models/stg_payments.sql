{{ config(description='One row per payment (the demo revenue source), deduplicated on payment_id (its earliest paid_at).',
          materialized='incremental', unique_key='payment_id') }}
-- Incremental on paid_at, the usual dbt watermark: nightly, only payments paid from the stored latest paid_at
-- minus var lookback_days on (or from --vars '{backfill_from: DAY}') are read. Assumes a payment lands at most
-- lookback_days after it is paid (demo-data --append-day lands each day's payments that day); one landing later
-- than that is missed until a backfill or --full-refresh. A payment already stored as paid before the window
-- keeps that row (its copies in the window are re-deliveries), as a full build keeps its earliest copy.
{% set window_start %}
    {%- if var('backfill_from', none) -%} cast('{{ var('backfill_from') }}' as timestamp)
    {%- else -%} coalesce((select max(paid_at) - interval ({{ var('lookback_days', 3) }}) day from {{ this }}),
                          timestamp '0001-01-01')
    {%- endif -%}
{% endset %}
with paid as (
    select payment_id, user_id, paid_at, amount
    from {{ source('billing', 'payments') }}
    {% if is_incremental() %}
    where paid_at >= {{ window_start }}
    {% endif %}
)
select payment_id, user_id, paid_at, amount
from paid
{% if is_incremental() %}
anti join (  -- paid before the window: stored as it is
    select payment_id from {{ this }} semi join paid using (payment_id)
    where paid_at < {{ window_start }}
) as earlier using (payment_id)
{% endif %}
qualify row_number() over (partition by payment_id order by paid_at) = 1

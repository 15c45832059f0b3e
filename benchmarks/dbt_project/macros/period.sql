{# The first day of the period containing expr: week = ISO week (Monday), month, ... #}
{% macro period(expr, grain) -%}
cast(date_trunc('{{ grain }}', {{ expr }}) as date)
{%- endmacro %}

{# safe_ratio('a', 'b'): a / b, NULL when b is 0. Macros in macros/*.sql are callable from every template. #}
{% macro safe_ratio(numerator, denominator) -%}
({{ numerator }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('placed_at', grain) }} as period_start,
    sum(items) / count(*) as value,
    sum(items) as numerator,
    count(*) as denominator
from {{ ref('stg_orders') }}
group by all
{% endfor %}

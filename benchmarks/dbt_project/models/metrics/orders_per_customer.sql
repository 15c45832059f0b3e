{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('placed_at', grain) }} as period_start,
    count(*) / count(distinct user_id) as value,
    count(*) as numerator,
    count(distinct user_id) as denominator
from {{ ref('stg_orders') }}
group by all
{% endfor %}

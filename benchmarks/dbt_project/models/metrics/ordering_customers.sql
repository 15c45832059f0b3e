{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('placed_at', grain) }} as period_start,
    count(distinct user_id) as value
from {{ ref('stg_orders') }}
group by all
{% endfor %}

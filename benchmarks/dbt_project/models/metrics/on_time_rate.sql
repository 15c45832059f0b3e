{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('placed_at', grain) }} as period_start,
    count(*) filter (where is_on_time) / count(*) as value,
    count(*) filter (where is_on_time) as numerator,
    count(*) as denominator
from {{ ref('orders_enriched') }}
group by all
{% endfor %}

{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('occurred_at', grain) }} as period_start,
    count(*) filter (where event_type = 'add_to_cart')
        / nullif(count(*) filter (where event_type = 'search'), 0) as value,
    count(*) filter (where event_type = 'add_to_cart') as numerator,
    count(*) filter (where event_type = 'search') as denominator
from {{ ref('stg_sessions') }}
where event_type in ('search', 'add_to_cart')
group by all
{% endfor %}

{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('occurred_at', grain) }} as period_start,
    count(*) filter (where event_type = 'push_click')
        / nullif(count(*) filter (where event_type = 'push_sent'), 0) as value,
    count(*) filter (where event_type = 'push_click') as numerator,
    count(*) filter (where event_type = 'push_sent') as denominator
from {{ ref('stg_pushes') }}
group by all
{% endfor %}

{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('delivered_at', grain) }} as period_start,
    sum(minutes_late) / count(*) as value,
    sum(minutes_late) as numerator,
    count(*) as denominator
from {{ ref('stg_deliveries') }}
group by all
{% endfor %}

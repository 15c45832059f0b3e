{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
select
    '{{ grain }}' as grain,
    {{ period('signed_up_at', grain) }} as period_start,
    count(*) as value
from {{ ref('stg_signups') }}
group by all
{% endfor %}

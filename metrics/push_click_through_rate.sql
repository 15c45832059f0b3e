{{ config(kind='input', parent='orders_per_customer', edge='hypothesis', dimension='frequency',
          owner='Engagement', label='Push click-through rate', unit='percent',
          dimensions=['region', 'platform']) }}
select
    {{ period('occurred_at') }} as period_start,
    count(*) filter (where event_type = 'push_click')
        / nullif(count(*) filter (where event_type = 'push_sent'), 0) as value,
    count(*) filter (where event_type = 'push_click') as numerator,
    count(*) filter (where event_type = 'push_sent') as denominator
from {{ ref('stg_pushes') }}
group by 1

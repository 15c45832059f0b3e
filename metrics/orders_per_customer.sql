{{ config(kind='input', parent='on_time_orders', edge='formula', dimension='frequency',
          owner='Engagement', label='Orders per ordering customer', unit='number',
          dimensions=['region', 'platform']) }}
select
    {{ period('placed_at') }} as period_start,
    count(*) / count(distinct user_id) as value,
    count(*) as numerator,
    count(distinct user_id) as denominator
from {{ ref('stg_orders') }}
group by 1

{{ config(kind='input', parent='orders_per_customer', edge='hypothesis', dimension='frequency',
          owner='Engagement', label='Orders repeating one within two weeks') }}
select
    {{ period('placed_at') }} as period_start,
    count(*) filter (where is_repeat) / count(*) as value,
    count(*) filter (where is_repeat) as numerator,
    count(*) as denominator
from {{ ref('order_facts') }}
group by 1

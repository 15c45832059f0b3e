{{ config(kind='input', parent='orders', edge='formula', dimension='frequency', owner='Engagement',
          label='Orders per customer') }}
select
    {{ period('placed_at') }} as period_start,
    count(*) / count(distinct user_id) as value,
    count(*) as numerator,
    count(distinct user_id) as denominator
from {{ ref('order_facts') }}
group by 1

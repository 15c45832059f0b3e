{{ config(kind='input', parent='orders', edge='formula', dimension='breadth', owner='Growth',
          label='Ordering customers', target=40) }}
select {{ period('placed_at') }} as period_start, count(distinct user_id) as value
from {{ ref('order_facts') }}
group by 1

{{ config(kind='north_star', label='Orders', owner='Leadership', formula='customers * orders_per_customer') }}
select {{ period('placed_at') }} as period_start, count(*) as value
from {{ ref('order_facts') }}
group by 1

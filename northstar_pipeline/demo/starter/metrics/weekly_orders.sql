{{ config(kind='north_star', label='Orders', owner='Leadership',
          formula='ordering_customers * orders_per_customer') }}
select
    {{ period('placed_at') }} as period_start,
    count(*) as value
from {{ ref('stg_orders') }}
group by 1

{{ config(kind='counter', guard='on_time_orders', label='Support tickets per order', unit='number',
          owner='Customer Experience', direction='lower_is_better',
          warn_change_pct=3, breach_change_pct=5, ceiling=0.08) }}
with tickets as (
    select {{ period('opened_at') }} as period_start, count(*) as tickets
    from {{ ref('stg_tickets') }}
    group by 1
), orders as (
    select {{ period('placed_at') }} as period_start, count(*) as orders
    from {{ ref('stg_orders') }}
    group by 1
)
select
    orders.period_start,
    coalesce(tickets.tickets, 0) / orders.orders as value,
    coalesce(tickets.tickets, 0) as numerator,
    orders.orders as denominator
from orders
left join tickets on tickets.period_start = orders.period_start

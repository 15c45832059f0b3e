{% for grain in var('grains') %}
{% if not loop.first %}union all{% endif %}
(
with tickets as (
    select {{ period('opened_at', grain) }} as period_start, count(*) as tickets
    from {{ ref('stg_tickets') }}
    group by 1
), orders as (
    select {{ period('placed_at', grain) }} as period_start, count(*) as orders
    from {{ ref('stg_orders') }}
    group by 1
)
select
    '{{ grain }}' as grain,
    orders.period_start,
    coalesce(tickets.tickets, 0) / orders.orders as value,
    coalesce(tickets.tickets, 0) as numerator,
    orders.orders as denominator
from orders
left join tickets on tickets.period_start = orders.period_start
)
{% endfor %}

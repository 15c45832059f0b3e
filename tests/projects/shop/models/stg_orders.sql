{{ config(description='Placed orders, one per order (first landing), with the same customer''s previous order.') }}
with placed as (
    select
        order_id,
        user_id,
        occurred_at,
        items,
        promised_at,
        row_number() over (partition by event_id order by landed_at) as copy
    from {{ source('raw', 'events') }}
    where event_type = 'order_placed'
)
select
    order_id,
    user_id,
    occurred_at as placed_at,
    items,
    promised_at,
    lag(occurred_at) over (partition by user_id order by occurred_at, order_id) as previous_placed_at
from placed
where copy = 1

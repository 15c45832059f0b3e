{{ config(description='One row per placed order.') }}
select
    order_id,
    user_id,
    occurred_at as placed_at,
    items,
    promised_at,
    region,
    platform
from {{ ref('stg_events') }}
where event_type = 'order_placed'

{{ config(description='One row per placed order (deduplicated on event_id).') }}
select distinct on (event_id)
    order_id,
    user_id,
    occurred_at as placed_at,
    items
from {{ source('raw', 'events') }}
where event_type = 'order_placed'
order by event_id, landed_at

-- Raw events, deduplicated: a re-delivered event keeps its first landing (landed_at only orders them).
select
    event_id,
    user_id,
    event_type,
    occurred_at,
    order_id,
    items,
    promised_at,
    delivered_at
from {{ source('raw', 'events') }}
qualify row_number() over (partition by event_id order by landed_at) = 1

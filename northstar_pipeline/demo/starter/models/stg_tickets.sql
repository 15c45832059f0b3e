{{ config(description='Support tickets (deduplicated on event_id).') }}
select distinct on (event_id)
    event_id as ticket_id,
    user_id,
    occurred_at as opened_at
from {{ source('raw', 'events') }}
where event_type = 'support_ticket'
order by event_id, landed_at

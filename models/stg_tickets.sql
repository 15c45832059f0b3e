{{ config(description='Support tickets, each about one order.') }}
select
    event_id as ticket_id,
    user_id,
    order_id,
    occurred_at as opened_at,
    region,
    platform
from {{ ref('stg_events') }}
where event_type = 'support_ticket'

{{ config(description='Support tickets, each about one order.', materialized='incremental', unique_key='ticket_id') }}
-- Nightly, only the stg_events rows that landed in the window are read (macros/incremental.sql).
select
    event_id as ticket_id,
    user_id,
    order_id,
    occurred_at as opened_at,
    region,
    platform,
    landed_date
from {{ ref('stg_events') }}
where event_type = 'support_ticket'
{% if is_incremental() %}
    and landed_date >= {{ landed_window() }}
{% endif %}

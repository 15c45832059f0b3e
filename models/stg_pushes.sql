{{ config(description='Push notifications sent and clicked.', materialized='view') }}
select
    event_id,
    user_id,
    event_type,
    occurred_at,
    region,
    platform
from {{ ref('stg_events') }}
where event_type in ('push_sent', 'push_click')

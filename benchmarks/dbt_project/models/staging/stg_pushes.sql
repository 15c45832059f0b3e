-- Push notifications sent and clicked.
select event_id, user_id, event_type, occurred_at
from {{ ref('stg_events') }}
where event_type in ('push_sent', 'push_click')

-- One row per new customer at signup.
select user_id, occurred_at as signed_up_at
from {{ ref('stg_events') }}
where event_type = 'signup'

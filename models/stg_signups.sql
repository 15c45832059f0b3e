{{ config(description='One row per new customer at signup.') }}
select
    user_id,
    occurred_at as signed_up_at,
    region,
    platform
from {{ ref('stg_events') }}
where event_type = 'signup'

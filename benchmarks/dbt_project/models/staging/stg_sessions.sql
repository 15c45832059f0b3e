-- In-app activity: app opens, searches and add-to-carts.
select event_id, user_id, event_type, occurred_at
from {{ ref('stg_events') }}
where event_type in ('app_open', 'search', 'add_to_cart')

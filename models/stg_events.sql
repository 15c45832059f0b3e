{{ config(description='Raw events, deduplicated on event_id: a re-delivered event is kept once, at its first landing.') }}
-- Re-deliveries are rare (about 0.3%): find their ids with a narrow aggregate, pass every other
-- event through as it is, and rank only the few re-delivered ones. At 100M events this streams,
-- where a window or a GROUP BY over every column sorts or hashes all 100M wide rows.
-- landed_at, the lake's ingestion time, only orders the re-deliveries: it is not carried on. A
-- distinct timestamp per row is the costliest column to store (a sixth of this model's time at 100M).
with redelivered as (
    select event_id
    from {{ source('raw', 'events') }}
    group by event_id
    having count(*) > 1
)
select event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at
from {{ source('raw', 'events') }}
anti join redelivered using (event_id)
union all
select event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at
from {{ source('raw', 'events') }}
semi join redelivered using (event_id)
qualify row_number() over (partition by event_id order by landed_at) = 1

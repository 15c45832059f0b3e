{{ config(description='Raw events, deduplicated on event_id: a re-delivered event is kept once, at its first landing.',
          materialized='incremental', unique_key='event_id') }}
-- Nightly, only the partitions that landed since the last build are read, plus a lookback of
-- late files (var lookback_days); a re-delivery of an event stored earlier replaces it (same values).
-- --vars '{backfill_from: 2026-10-01}' re-reads every partition from that day on instead.
-- Re-deliveries are rare (about 0.3%): find their ids with a narrow aggregate, pass every other
-- event through as it is, and rank only the few re-delivered ones. At 100M events this streams,
-- where a window or a GROUP BY over every column sorts or hashes all 100M wide rows.
-- landed_at, the lake's ingestion time, only orders the re-deliveries: it is not carried on. A
-- distinct timestamp per row is the costliest column to store (a sixth of this model's time at 100M).
with batch as not materialized (  -- read three times: streamed each time, never held in memory
    select * from {{ source('raw', 'events') }}
    {% if is_incremental() and var('backfill_from', none) %}
    where landed_date >= cast('{{ var('backfill_from') }}' as date)  -- a backfill: re-read from that day on
    {% elif is_incremental() %}
    where landed_date >= (select max(landed_date) - {{ var('lookback_days', 3) }} from {{ this }})
    {% endif %}
),
redelivered as (
    select event_id
    from batch
    group by event_id
    having count(*) > 1
)
select event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at, landed_date
from batch
anti join redelivered using (event_id)
union all
select event_id, user_id, event_type, occurred_at, order_id, items, promised_at, delivered_at, landed_date
from batch
semi join redelivered using (event_id)
qualify row_number() over (partition by event_id order by landed_at) = 1

{{ config(kind='input', parent='on_time_rate', edge='hypothesis', dimension='efficiency',
          owner='Logistics & Fulfillment', label='Average minutes late vs promise',
          direction='lower_is_better', unit='minutes',
          dimensions=['region', 'platform']) }}
select
    {{ period('delivered_at') }} as period_start,
    sum(minutes_late) / count(*) as value,
    sum(minutes_late) as numerator,
    count(*) as denominator
from {{ ref('stg_deliveries') }}
group by 1

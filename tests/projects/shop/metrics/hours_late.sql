{{ config(kind='input', parent='customers', edge='hypothesis', dimension='efficiency', owner='Logistics',
          label='Average hours late', direction='lower_is_better') }}
-- minutes / 60.0 is a DECIMAL division in Spark unless made DOUBLE: the transform does it
select
    {{ period('delivered_at') }} as period_start,
    sum(minutes_late) / 60.0 / count(*) as value,
    sum(minutes_late) / 60.0 as numerator,
    count(*) as denominator
from {{ ref('order_facts') }}
where delivered_at is not null
group by 1

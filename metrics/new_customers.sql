{{ config(kind='input', parent='ordering_customers', edge='hypothesis', dimension='breadth',
          owner='Acquisition & Retention', label='New customer signups', unit='count',
          dimensions=['region', 'platform']) }}
select
    {{ period('signed_up_at') }} as period_start,
    count(*) as value
from {{ ref('stg_signups') }}
group by 1

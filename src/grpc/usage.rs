//! GetUsage on the wire: the request checked into a [`UsageRequest`], the
//! [`Report`] written back.

use super::convert;
use crate::{
    error::Error,
    proto::v1 as pb,
    store::UsageOwner,
    usage::report::{Report, UsageRequest},
    validate,
};

pub fn request(req: &pb::GetUsageRequest) -> Result<UsageRequest, Error> {
    let owner = match (req.key_id.is_empty(), req.project.is_empty()) {
        (false, true) => UsageOwner::Key(validate::key_id("key_id", &req.key_id)?),
        (true, false) => {
            validate::name("project", &req.project)?;
            UsageOwner::Project(req.project.clone())
        }
        _ => {
            return Err(Error::invalid(
                "key_id",
                "set exactly one of key_id and project",
            ));
        }
    };
    let bucket = req
        .bucket
        .as_ref()
        .map(|d| {
            let d = convert::from_duration("bucket", d)?;
            if d.subsec_nanos() != 0 {
                return Err(Error::invalid("bucket", "one of 60s, 3600s or 86400s"));
            }
            Ok(d.num_seconds())
        })
        .transpose()?;
    Ok(UsageRequest {
        owner,
        since: req
            .since
            .as_ref()
            .map(|t| convert::from_timestamp("since", t))
            .transpose()?,
        until: req
            .until
            .as_ref()
            .map(|t| convert::from_timestamp("until", t))
            .transpose()?,
        bucket,
        top_keys: u32::try_from(req.top_keys)
            .map_err(|_| Error::invalid("top_keys", "must not be negative"))?,
    })
}

pub fn response(report: Report) -> pb::GetUsageResponse {
    pb::GetUsageResponse {
        series: report
            .series
            .into_iter()
            .map(|point| pb::UsagePoint {
                start: Some(convert::timestamp(point.start)),
                allowed: point.allowed,
                denied: point.denied.values().sum(),
                denied_by_reason: point
                    .denied
                    .into_iter()
                    .map(|(reason, calls)| (reason.to_ascii_uppercase(), calls))
                    .collect(),
            })
            .collect(),
        busiest_keys: report
            .busiest
            .into_iter()
            .map(|key| pb::KeyUsage {
                key_id: key.key_id.to_string(),
                label: key.label,
                allowed: key.allowed,
                denied: key.denied,
            })
            .collect(),
        bucket: Some(pbjson_types::Duration {
            seconds: report.bucket_seconds,
            nanos: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_owner_is_required() {
        for (key_id, project) in [("", ""), ("key_01h0000000000000000000000", "acme")] {
            let req = pb::GetUsageRequest {
                key_id: key_id.into(),
                project: project.into(),
                ..Default::default()
            };
            assert!(matches!(
                request(&req),
                Err(Error::InvalidArgument { field, .. }) if field == "key_id"
            ));
        }
    }

    #[test]
    fn denial_reasons_use_the_enum_names() {
        let report = Report {
            series: vec![crate::usage::report::Point {
                start: chrono::DateTime::from_timestamp(60, 0).unwrap(),
                allowed: 3,
                denied: [("rate_limited".to_owned(), 2), ("revoked".to_owned(), 1)].into(),
            }],
            busiest: Vec::new(),
            bucket_seconds: 60,
        };
        let point = &response(report).series[0];
        assert_eq!(point.denied, 3);
        assert_eq!(point.denied_by_reason["RATE_LIMITED"], 2);
        assert_eq!(point.denied_by_reason["REVOKED"], 1);
    }
}

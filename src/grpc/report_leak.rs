//! ReportLeak: the leak-report semantics of `POST /leaks/github` for
//! internal scanners, behind ordinary admin authentication.

use tonic::Status;

use crate::{
    admin::{Actor, Admin, LeakLabel, LeakedToken},
    proto::v1 as pb,
};

/// The reporter's name in the metric and the revoke reason.
const REPORTER: &str = "rpc";

pub async fn report(
    admin: &Admin,
    actor: &Actor,
    req: pb::ReportLeakRequest,
) -> Result<pb::ReportLeakResponse, Status> {
    let tokens: Vec<LeakedToken> = req
        .tokens
        .into_iter()
        .map(|t| LeakedToken {
            token: t.token,
            token_type: t.r#type,
            url: t.url,
            source: t.source,
        })
        .collect();
    let labels = admin.report_leaks(actor, REPORTER, &tokens).await?;
    Ok(pb::ReportLeakResponse {
        verdicts: labels
            .into_iter()
            .map(|label| pb::LeakVerdict {
                label: wire_label(label) as i32,
            })
            .collect(),
    })
}

fn wire_label(label: LeakLabel) -> pb::LeakLabel {
    match label {
        LeakLabel::TruePositive => pb::LeakLabel::TruePositive,
        LeakLabel::FalsePositive => pb::LeakLabel::FalsePositive,
    }
}

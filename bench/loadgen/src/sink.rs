//! `sink`: an OTLP/gRPC trace collector that counts what it receives and
//! keeps nothing, so that keyward's span export can be measured without a
//! real collector competing for the CPU.
//!
//! After every export it rewrites a small JSON status file (spans, export
//! requests, bytes, spans per name), which the harness reads once keyward
//! has exited and flushed its last batch.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Mutex};

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;
use tonic::{Request, Response, Status};

#[derive(clap::Args)]
pub struct SinkArgs {
    /// Address to listen on (OTLP/gRPC).
    #[arg(long, default_value = "127.0.0.1:4317")]
    listen: SocketAddr,
    /// Where the counts go (JSON, rewritten after every export).
    #[arg(long)]
    status_file: PathBuf,
}

#[derive(Default)]
struct Counts {
    /// Spans received, all names.
    spans: u64,
    /// Export calls received.
    exports: u64,
    /// Encoded size of the export requests, in bytes.
    bytes: u64,
    /// Spans received per span name.
    by_name: BTreeMap<String, u64>,
}

struct Sink {
    counts: Mutex<Counts>,
    status_file: PathBuf,
}

impl Sink {
    fn write_status(&self, counts: &Counts) -> std::io::Result<()> {
        let status = serde_json::json!({
            "spans": counts.spans,
            "exports": counts.exports,
            "bytes": counts.bytes,
            "by_name": counts.by_name,
        });
        // Write then rename, so that a reader never sees half a file.
        let partial = self.status_file.with_extension("partial");
        std::fs::write(&partial, status.to_string())?;
        std::fs::rename(&partial, &self.status_file)
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        let mut counts = self.counts.lock().expect("not poisoned");
        counts.exports += 1;
        counts.bytes += request.encoded_len() as u64;
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                counts.spans += scope.spans.len() as u64;
                for span in scope.spans {
                    *counts.by_name.entry(span.name).or_default() += 1;
                }
            }
        }
        self.write_status(&counts)
            .map_err(|e| Status::internal(format!("cannot write the status file: {e}")))?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let sink = Sink {
        counts: Mutex::new(Counts::default()),
        status_file: args.status_file,
    };
    sink.write_status(&Counts::default())
        .with_context(|| format!("cannot write {}", sink.status_file.display()))?;
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve(args.listen)
        .await
        .with_context(|| format!("cannot serve OTLP on {}", args.listen))
}

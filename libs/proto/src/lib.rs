//! Caseline's public gRPC API, generated at build time from `proto/caseline/v1`.
//!
//! Servers and clients both depend on this crate alone and use the `tonic` and `prost`
//! it re-exports, so the whole workspace speaks one version of each. Prost types stay at
//! the edge: services convert them into validated domain types with `TryFrom`.
#![forbid(unsafe_code)]

pub use prost;
pub use prost_types;
pub use tonic;

/// Encoded `FileDescriptorSet` of every Caseline proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/caseline_descriptor.bin"));

/// Fully qualified names of the five services, in the order they are documented.
pub const SERVICE_NAMES: [&str; 5] = [
    "caseline.v1.CaseService",
    "caseline.v1.ReferralService",
    "caseline.v1.SupportPlanService",
    "caseline.v1.CompensationService",
    "caseline.v1.AuditService",
];

/// `caseline.v1`: services, requests and responses.
pub mod v1 {
    #![allow(missing_docs, clippy::all, missing_debug_implementations)]
    tonic::include_proto!("caseline.v1");

    /// `caseline.v1.events`: payloads of the events in the log. The event type is the
    /// message name.
    pub mod events {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        tonic::include_proto!("caseline.v1.events");
    }
}

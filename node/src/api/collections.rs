//! An owner's collections: create and list them, upload, list and delete documents, query,
//! and grant subscribers' workers access. Reachable only through the owner's channel.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prag_proto::api::{
    CollectionInfo, CreateCollectionRequest, DeleteDocumentRequest, DocumentInfo, DocumentOutcome, ErrorBody,
    GrantRequest, GrantsResponse, QueryRequest, QueryResponse, UploadResponse,
};

use super::inbound::{Inbound, SMALL_BODY};
use crate::error::Result;
use crate::node::Node;

#[utoipa::path(
    get,
    operation_id = "list_collections",
    path = "/v1/collections",
    tag = "sealed",
    summary = "Collections the caller owns",
    responses((status = 200, body = Vec<CollectionInfo>), (status = 401, body = ErrorBody))
)]
pub(crate) async fn list(State(node): State<Arc<Node>>, inbound: Inbound) -> axum::Json<Vec<CollectionInfo>> {
    axum::Json(node.status().collections_of(&inbound.caller.pubkey_hex))
}

#[utoipa::path(
    post,
    operation_id = "create_collection",
    path = "/v1/collections",
    tag = "sealed",
    summary = "Create a collection; the signer becomes its owner",
    request_body = CreateCollectionRequest,
    responses(
        (status = 201, body = CollectionInfo),
        (status = 409, description = "The name exists", body = ErrorBody),
        (status = 429, description = "The key owns as many collections as it may", body = ErrorBody),
    )
)]
pub(crate) async fn create(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse> {
    let (who, req): (_, CreateCollectionRequest) = inbound.json(SMALL_BODY).await?;
    let c = node.collections().create(&req.name, &who.key).await?;
    Ok((StatusCode::CREATED, axum::Json(node.status().collection_info(&c))))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct UploadQuery {
    /// The document's path in the collection (its extension says how to read it).
    path: String,
}

#[utoipa::path(
    post,
    operation_id = "upload_document",
    path = "/v1/collections/{name}/documents",
    tag = "sealed",
    summary = "Upload one file, raw (owner only)",
    // `openapi()` puts the supported types in front (from `extract::SUPPORTED`).
    description = "HTML and PDF are read in a sandboxed child process with memory, CPU-time and stack limits; a file \
        that hits one is refused (413) naming it.",
    params(("name" = String, Path, description = "Collection name"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = UploadResponse), (status = 413, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub(crate) async fn upload(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<UploadQuery>,
    inbound: Inbound,
) -> Result<axum::Json<UploadResponse>> {
    let who = inbound.caller.key;
    // Whether this caller may upload this file here is decided before its body is read.
    node.ingest().check_upload(&who, &name, &q.path, inbound.body.declared_len())?;
    let bytes = inbound.body.read(node.config().ingest.max_file_bytes).await?;
    let documents = node.ingest().upload(&who, &name, &q.path, bytes).await?;
    Ok(axum::Json(UploadResponse { documents }))
}

#[utoipa::path(
    get,
    operation_id = "list_documents",
    path = "/v1/collections/{name}/documents",
    tag = "sealed",
    summary = "List a collection's documents (owner only; the whole collection, on any node holding it)",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = Vec<DocumentInfo>), (status = 403, body = ErrorBody))
)]
pub(crate) async fn documents(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<Vec<DocumentInfo>>> {
    Ok(axum::Json(node.ingest().documents(&inbound.caller.key, &name)?))
}

#[utoipa::path(
    post,
    operation_id = "delete_document",
    path = "/v1/collections/{name}/documents/delete",
    tag = "sealed",
    summary = "Delete one document, by id or by path (owner only)",
    params(("name" = String, Path, description = "Collection name")),
    request_body = DeleteDocumentRequest,
    responses((status = 200, body = DocumentOutcome), (status = 404, body = ErrorBody))
)]
pub(crate) async fn delete(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<DocumentOutcome>> {
    let (who, req): (_, DeleteDocumentRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(node.ingest().delete_document(&who.key, &name, req.doc_id.as_deref(), req.path.as_deref()).await?))
}

#[utoipa::path(
    post,
    operation_id = "query_collection",
    path = "/v1/collections/{name}/query",
    tag = "sealed",
    summary = "Top-k retrieval (owner only)",
    params(("name" = String, Path, description = "Collection name")),
    request_body = QueryRequest,
    responses((status = 200, body = QueryResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub(crate) async fn query(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<QueryResponse>> {
    let (who, req): (_, QueryRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(node.retrieval().query(&who.key, &name, req).await?))
}

#[utoipa::path(
    get,
    operation_id = "list_grants",
    path = "/v1/collections/{name}/grants",
    tag = "sealed",
    summary = "Subscribers granted access to the collection (owner only)",
    params(("name" = String, Path, description = "Collection name")),
    responses((status = 200, body = GrantsResponse), (status = 403, body = ErrorBody))
)]
pub(crate) async fn grants(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<GrantsResponse>> {
    Ok(axum::Json(node.access().grants(&inbound.caller.key, &name)?))
}

#[utoipa::path(
    post,
    operation_id = "grant",
    path = "/v1/collections/{name}/grants",
    tag = "sealed",
    summary = "Grant a subscriber's attested workers access (owner only)",
    params(("name" = String, Path, description = "Collection name")),
    request_body = GrantRequest,
    responses((status = 200, body = GrantsResponse), (status = 403, body = ErrorBody))
)]
pub(crate) async fn grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<GrantsResponse>> {
    let (who, req): (_, GrantRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(node.access().set_grant(&who.key, &name, &req.subscriber, true).await?))
}

#[utoipa::path(
    post,
    operation_id = "revoke_grant",
    path = "/v1/collections/{name}/grants/revoke",
    tag = "sealed",
    summary = "Revoke a subscriber's access (owner only)",
    params(("name" = String, Path, description = "Collection name")),
    request_body = GrantRequest,
    responses((status = 200, body = GrantsResponse), (status = 403, body = ErrorBody))
)]
pub(crate) async fn revoke(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<axum::Json<GrantsResponse>> {
    let (who, req): (_, GrantRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(node.access().set_grant(&who.key, &name, &req.subscriber, false).await?))
}

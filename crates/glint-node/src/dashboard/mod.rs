//! The web dashboard, served on the admin listener under `/dashboard`.

use std::sync::Arc;

use axum::Router;

use crate::node::Node;

pub fn router(_node: Arc<Node>) -> Router<Arc<Node>> {
    Router::new()
}

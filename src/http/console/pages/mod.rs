//! The console's pages, one module each, all server-rendered.

mod actions;
pub mod assets;
mod audit;
mod edit;
mod issue;
mod key;
mod keys;
mod overview;
mod projects;
mod settings;
pub mod sign_in;
mod text;
mod usage;
mod view;

pub use view::View;

use super::error::ConsoleError;
use crate::http::HttpResponse;

pub async fn get(path: &str, view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    match path {
        "/projects" => projects::page(view).await,
        "/project" => overview::page(view).await,
        "/keys" => keys::page(view).await,
        "/key" => key::page(view).await,
        "/issue" => issue::form(view).await,
        "/revoke" => actions::revoke_form(view).await,
        "/edit" => edit::form(view).await,
        "/audit" => audit::page(view).await,
        _ => Err(ConsoleError::NotFound),
    }
}

pub async fn post(path: &str, view: &View<'_>) -> Result<HttpResponse, ConsoleError> {
    match path {
        "/issue" => issue::submit(view).await,
        "/rotate" => actions::rotate(view).await,
        "/revoke" => actions::revoke(view).await,
        "/edit" => edit::submit(view).await,
        _ => Err(ConsoleError::NotFound),
    }
}

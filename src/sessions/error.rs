//! What can go wrong in the engine, for the site to turn into a response
//! (the engine never decides how an error looks).

/// An error of the session engine.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store could not be reached or answered with an error.
    #[error("the session store is unavailable: {0}")]
    Unavailable(#[source] tower_sessions::session_store::Error),
    /// The session would outgrow its limit (the store's, or the 4096 bytes
    /// a browser keeps for a cookie); nothing was stored.
    #[error("{0}")]
    TooLarge(String),
}

impl From<tower_sessions::session_store::Error> for SessionError {
    fn from(error: tower_sessions::session_store::Error) -> Self {
        SessionError::Unavailable(error)
    }
}

impl From<tower_sessions::session::Error> for SessionError {
    fn from(error: tower_sessions::session::Error) -> Self {
        match error {
            tower_sessions::session::Error::Store(e) => SessionError::Unavailable(e),
            tower_sessions::session::Error::SerdeJson(e) => SessionError::Unavailable(
                tower_sessions::session_store::Error::Encode(e.to_string()),
            ),
        }
    }
}

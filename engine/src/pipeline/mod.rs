//! The session's stages between the codecs and the runtime.

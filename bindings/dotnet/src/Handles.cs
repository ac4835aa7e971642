using System;
using System.Runtime.InteropServices;

namespace Trunkline
{
    /// <summary>
    /// Owns a <c>trunkline_engine*</c>. Released exactly once, by trunkline_engine_free, when the
    /// Engine is disposed or finalized; the SafeHandle reference count keeps it alive while a native
    /// call that uses it (such as a blocking trunkline_engine_wait) is in flight.
    /// </summary>
    public sealed class EngineHandle : SafeHandle
    {
        /// <summary>Used by the marshaller for <c>out</c> parameters.</summary>
        public EngineHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            Native.trunkline_engine_free(handle);
            return true;
        }
    }

    /// <summary>
    /// Owns a <c>trunkline_session*</c>. Released exactly once, by trunkline_session_free, when the
    /// Session is disposed or finalized, never while a call on it is in flight.
    /// </summary>
    public sealed class SessionHandle : SafeHandle
    {
        /// <summary>Used by the marshaller for <c>out</c> parameters.</summary>
        public SessionHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            Native.trunkline_session_free(handle);
            return true;
        }
    }
}

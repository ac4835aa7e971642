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

    /// <summary>
    /// Owns a <c>trunkline_server*</c>. Released exactly once, by trunkline_server_free, when the
    /// Server is disposed or finalized, never while a call on it (such as a blocking
    /// trunkline_server_shutdown) is in flight. It holds a reference on its engine's handle, so
    /// the engine is freed after its servers (as the header requires) even when both are
    /// finalized together.
    /// </summary>
    public sealed class ServerHandle : SafeHandle
    {
        EngineHandle engine;

        /// <summary>Used by the marshaller for <c>out</c> parameters.</summary>
        public ServerHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <summary>Takes over a reference the caller added on <paramref name="engineHandle"/>
        /// (DangerousAddRef): it is released after trunkline_server_free.</summary>
        internal void AdoptEngineReference(EngineHandle engineHandle)
        {
            engine = engineHandle;
        }

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            Native.trunkline_server_free(handle);
            var e = engine;
            engine = null;
            if (e != null) e.DangerousRelease();
            return true;
        }
    }

    /// <summary>
    /// Owns a <c>trunkline_vad*</c>. Released exactly once, by trunkline_vad_free, when the Vad is
    /// disposed or finalized, never while a call on it is in flight.
    /// </summary>
    public sealed class VadHandle : SafeHandle
    {
        /// <summary>Used by the marshaller for <c>out</c> parameters.</summary>
        public VadHandle() : base(IntPtr.Zero, true) { }

        /// <inheritdoc/>
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            Native.trunkline_vad_free(handle);
            return true;
        }
    }
}

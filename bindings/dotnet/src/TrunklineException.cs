using System;

namespace Trunkline
{
    /// <summary>A native call failed: <see cref="Code"/> is its trunkline_result, and the message
    /// is trunkline_result_message's text.</summary>
    public class TrunklineException : Exception
    {
        /// <summary>Creates the exception for <paramref name="code"/>, raised by <paramref name="function"/>.</summary>
        public TrunklineException(ResultCode code, string function)
            : base(function + ": " + Native.ResultMessage(code) + " (" + code + ")")
        {
            Code = code;
            Function = function;
        }

        /// <summary>The result code.</summary>
        public ResultCode Code { get; private set; }

        /// <summary>The C function that returned it.</summary>
        public string Function { get; private set; }
    }
}

using System.Runtime.InteropServices;

namespace NextFlowRL.Torch.Determinism;

/// <summary>
/// Bitwise-reproducible CPU numerics across processes. libtorch's CPU build does its matrix products in Intel MKL, whose
/// default kernels may pick different code paths for differently aligned buffers, so the same computation in two
/// processes (or twice in one) can differ in the last bits, and a sampled token or a reward can flip from there:
/// measured here, two identical LoRA runs in one test process differed at step 1 in <c>grad_norm</c> and
/// <c>parity_max_dev</c> until <c>MKL_CBWR</c> was set. <see cref="Configure"/> sets MKL's conditional numerical
/// reproducibility to <c>AUTO,STRICT</c> (the processor's best code path, independent of alignment) before MKL
/// initializes; on this project's 2-core machine it cost no measurable speed (docs/results.md).
/// </summary>
public static partial class NativeNumerics
{
    /// <summary>The MKL setting applied when the user set none.</summary>
    public const string MklReproducibility = "AUTO,STRICT";

    private static int _configured;

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    /// <summary>
    /// Sets <c>MKL_CBWR</c> in the native environment unless the user set it (call it before the first tensor
    /// operation; later calls do nothing). Windows: through the process environment, which the C runtime reads.
    /// </summary>
    /// <returns>True when the setting was applied by this call.</returns>
    public static bool Configure()
    {
        if (Interlocked.Exchange(ref _configured, 1) == 1) return false;
        if (Environment.GetEnvironmentVariable("MKL_CBWR") is not null) return false;
        if (OperatingSystem.IsWindows())
        {
            Environment.SetEnvironmentVariable("MKL_CBWR", MklReproducibility);
            return true;
        }
        try
        {
            return SetEnv("MKL_CBWR", MklReproducibility, 0) == 0;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }
}

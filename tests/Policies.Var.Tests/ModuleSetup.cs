using System.Runtime.CompilerServices;

namespace NextFlowRL.Policies.Var.Tests;

/// <summary>Runs before any test of this assembly, as the CLI's start does: MKL's reproducible numerics.</summary>
internal static class ModuleSetup
{
    [ModuleInitializer]
    internal static void Init() => NextFlowRL.Torch.Determinism.NativeNumerics.Configure();
}

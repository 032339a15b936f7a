#!/usr/bin/env pwsh
# NextFlowRL build entry point for PowerShell 7 (Windows, macOS, Linux); the twin of build.sh.
#   ./build.ps1 test            check the native packages, build Release, run every test, print "N passed, N failed"
#   ./build.ps1 run ARGS...     build Release and run nextflow-rl ARGS... (e.g. ./build.ps1 run train)
#   ./build.ps1 deps            only check (Linux: install) the native packages (Tesseract 5 + English data)
#   ./build.ps1 pack            build Release and pack the sdk/ packages and the templates into artifacts/packages/
#   ./build.ps1 pack-tool [RID] pack the nextflow-rl .NET tool for one runtime (default: this machine's) into artifacts/packages/
#   ./build.ps1 mutate          mutation testing (Stryker.NET) of the core math; fails below 80 % (docs/testing.md)
# Environment: CONFIGURATION (default Release); TORCH_BACKEND (cpu, cuda-windows, cuda-linux; default cpu).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Set-Location -LiteralPath $PSScriptRoot
$Configuration = if ($env:CONFIGURATION) { $env:CONFIGURATION } else { 'Release' }
$TorchBackend = if ($env:TORCH_BACKEND) { $env:TORCH_BACKEND } else { 'cpu' }
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'; $env:DOTNET_NOLOGO = '1'; $env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

function Write-Log([string] $Message) { [Console]::Error.WriteLine("build.ps1: $Message") }

# The Tesseract 5 library and its English data, where the OCR plugin looks for them (plugins/Rewards.Ocr/README.md).
function Test-TesseractWindows {
    $folders = @()
    if ($env:NEXTFLOW_TESSERACT_LIBRARY) { $folders += Split-Path -Parent $env:NEXTFLOW_TESSERACT_LIBRARY }
    $folders += @("$env:ProgramFiles\Tesseract-OCR", "$env:LOCALAPPDATA\Programs\Tesseract-OCR")
    $folders += ($env:PATH -split ';' | Where-Object { $_ })
    $dll = $folders | Where-Object { $_ -and (Test-Path -LiteralPath $_) } |
        ForEach-Object { Get-ChildItem -LiteralPath $_ -Filter '*tesseract*.dll' -ErrorAction SilentlyContinue } |
        Where-Object { $_.Name -match '^(lib)?tesseract(5\d|-5)\.dll$' } | Select-Object -First 1
    if (-not $dll) {
        Write-Log 'Tesseract 5 is not installed (no tesseract5x.dll on PATH or under Program Files).'
        Write-Log '  install it with:  winget install --id UB-Mannheim.TesseractOCR'
        Write-Log '  or the installer from https://github.com/UB-Mannheim/tesseract/wiki, then add C:\Program Files\Tesseract-OCR to PATH'
        Write-Log '  (vcpkg users: vcpkg install tesseract:x64-windows, then set NEXTFLOW_TESSERACT_LIBRARY to the tesseract55.dll it built)'
        return $false
    }
    $data = @($env:TESSDATA_PREFIX, (Join-Path $dll.DirectoryName 'tessdata'), "$env:ProgramFiles\Tesseract-OCR\tessdata") |
        Where-Object { $_ -and (Test-Path -LiteralPath (Join-Path $_ 'eng.traineddata')) } | Select-Object -First 1
    if (-not $data) {
        Write-Log "Tesseract's English data (eng.traineddata) was not found next to $($dll.FullName) or in TESSDATA_PREFIX."
        Write-Log '  the UB Mannheim installer includes it; otherwise download eng.traineddata from https://github.com/tesseract-ocr/tessdata_fast into a tessdata folder and set TESSDATA_PREFIX to that folder'
        return $false
    }
    return $true
}

function Test-TesseractMac {
    $found = @('/opt/homebrew/lib/libtesseract.5.dylib', '/usr/local/lib/libtesseract.5.dylib') | Where-Object { Test-Path -LiteralPath $_ }
    if ($env:NEXTFLOW_TESSERACT_LIBRARY -or $found) { return $true }
    Write-Log 'Tesseract 5 is not installed: brew install tesseract'
    return $false
}

function Install-TesseractDebian([string[]] $Extra = @()) {
    $missing = @('tesseract-ocr', 'tesseract-ocr-eng') + $Extra | Where-Object {
        $status = & dpkg-query -W -f='${Status}' $_ 2>$null
        -not ($status -match 'install ok installed')
    }
    if (-not $missing) { return $true }
    if (-not (Get-Command apt-get -ErrorAction SilentlyContinue)) {
        Write-Log "missing packages $($missing -join ' ') and no apt-get: install Tesseract 5 with English data by hand"
        return $false
    }
    $sudo = if ((& id -u) -ne '0') { @('sudo') } else { @() }
    Write-Log "installing $($missing -join ' ')"
    & @sudo apt-get update -qq *> $null
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & @sudo apt-get install -y -qq @missing *> $null
    return ($LASTEXITCODE -eq 0)
}

# -ForTests adds Chromium for the HTML report's browser test and Redis for the cluster's membership test on Debian
# (on Windows and macOS the tests use an installed Chrome or Edge, or NEXTFLOW_CHROMIUM, and a redis-server on PATH,
# or NEXTFLOW_REDIS_SERVER: brew install redis; on Windows Memurai).
function Invoke-Deps([switch] $ForTests) {
    $extra = if ($ForTests) { @('chromium', 'redis-server') } else { @() }
    $ok = if ($IsWindows) { Test-TesseractWindows }
          elseif ($IsMacOS) { Test-TesseractMac }
          elseif (Get-Command dpkg-query -ErrorAction SilentlyContinue) { Install-TesseractDebian -Extra $extra }
          else { Write-Log 'not a Debian/Ubuntu machine: install Tesseract 5 with English data with your package manager'; $true }
    if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) { Write-Log 'the .NET 10 SDK is required (https://dot.net)'; return $false }
    return $ok
}

function Invoke-Build {
    & dotnet build NextFlowRL.sln -c $Configuration "-p:TorchBackend=$TorchBackend" -nologo -clp:ErrorsOnly -v:quiet | Out-Host
    return ($LASTEXITCODE -eq 0)
}

$command = if ($args.Count -gt 0) { $args[0] } else { '' }
$rest = if ($args.Count -gt 1) { $args[1..($args.Count - 1)] } else { @() }
switch ($command) {
    'deps' {
        if (-not (Invoke-Deps)) { exit 1 }
    }
    'pack' {
        if (-not (Invoke-Build)) { exit 1 }
        & dotnet pack NextFlowRL.sln -c $Configuration --no-build -nologo -v:quiet -clp:ErrorsOnly | Out-Host
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
        Get-ChildItem -Path (Join-Path 'artifacts' 'packages') -Filter '*.nupkg' | ForEach-Object { $_.FullName }
    }
    'mutate' {
        # Each build/mutation/*.json names a project, its test project and the files to mutate; reports in artifacts/mutation/.
        & dotnet tool restore | Out-Null
        $status = 0
        foreach ($config in Get-ChildItem -Path (Join-Path 'build' 'mutation') -Filter '*.json') {
            $project = (Get-Content -Raw -LiteralPath $config.FullName | ConvertFrom-Json).'stryker-config'.project
            $dir = Get-ChildItem -Path 'sdk', 'plugins' -Recurse -Filter $project | Where-Object { $_.FullName -notmatch '[\\/]obj[\\/]' } | Select-Object -First 1
            Write-Log "mutating $($config.BaseName) ($($dir.DirectoryName))"
            Push-Location -LiteralPath $dir.DirectoryName
            & dotnet dotnet-stryker --config-file $config.FullName --output (Join-Path $PSScriptRoot 'artifacts' 'mutation' $config.BaseName)
            if ($LASTEXITCODE -ne 0) { $status = 1 }
            Pop-Location
        }
        exit $status
    }
    'pack-tool' {
        $rid = if ($rest.Count -gt 0) { $rest[0] } else { [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier }
        Write-Log "packing the nextflow-rl tool for $rid (LibTorch included: this takes a few minutes)"
        & dotnet pack (Join-Path 'hosts' 'NextFlowRL.Cli') -c $Configuration -r $rid "-p:TorchBackend=$TorchBackend" -p:NextFlowPackTool=true -nologo -v:quiet -clp:ErrorsOnly | Out-Host
        exit $LASTEXITCODE
    }
    'run' {
        if (-not (Invoke-Deps)) { exit 1 }
        if (-not (Invoke-Build)) { exit 1 }
        & dotnet (Join-Path 'hosts' 'NextFlowRL.Cli' 'bin' $Configuration 'net10.0' 'nextflow-rl.dll') @rest
        exit $LASTEXITCODE
    }
    'test' {
        if (-not (Invoke-Deps -ForTests)) { Write-Output '0 passed, 1 failed'; exit 1 }
        Write-Log "building ($Configuration, TorchBackend=$TorchBackend)"
        if (-not (Invoke-Build)) { Write-Output '0 passed, 1 failed'; exit 1 }
        Write-Log 'testing'
        $passed = 0; $failed = 0
        & dotnet test NextFlowRL.sln -c $Configuration --no-build -nologo @rest 2>&1 | ForEach-Object {
            $line = "$_"
            Write-Output $line
            if ($line -match 'Passed:\s+(\d+)') { $passed += [int]$Matches[1] }
            if ($line -match 'Failed:\s+(\d+)') { $failed += [int]$Matches[1] }
        }
        $status = $LASTEXITCODE
        if ($status -ne 0 -and $failed -eq 0) { $failed = 1 }
        Write-Output "$passed passed, $failed failed"
        exit $status
    }
    default {
        Get-Content -LiteralPath $PSCommandPath -TotalCount 9 | Select-Object -Skip 1 | ForEach-Object { $_.Substring(2) }
        exit 2
    }
}

<#
.SYNOPSIS
  Smoke test against the real wpr.exe (Windows only, elevated): runs
  labtrace-agent with its embedded WPR profile, then with the controller
  starts a trace, stops it, collects the .etl and checks its summary.
  Used by .github/workflows/windows.yml; cannot run under wine.
.EXAMPLE
  ./deploy/windows/real_wpr_smoke.ps1 -BuildDir build-msvc/Release
#>
param([Parameter(Mandatory = $true)][string]$BuildDir)
$ErrorActionPreference = 'Stop'

function Find-Exe([string]$name) {
  $hit = Get-ChildItem -Path $BuildDir -Recurse -Filter $name | Select-Object -First 1
  if (-not $hit) { throw "$name not found under $BuildDir" }
  return $hit.FullName
}
$agent = Find-Exe 'labtrace-agent.exe'
$labtrace = Find-Exe 'labtrace.exe'
$work = Join-Path $env:RUNNER_TEMP 'labtrace smoke'
New-Item -ItemType Directory -Force -Path $work | Out-Null
$portFile = Join-Path $work 'agent.port'

$proc = Start-Process -FilePath $agent -PassThru -NoNewWindow `
  -RedirectStandardError (Join-Path $work 'agent.log') `
  -ArgumentList @('--listen', '127.0.0.1:0', '--rest-listen', 'off',
                  '--data-dir', "`"$work\data`"", '--port-file', "`"$portFile`"",
                  '--wpr-path', "$env:SystemRoot\System32\wpr.exe")
try {
  for ($i = 0; $i -lt 60 -and -not (Test-Path $portFile); $i++) { Start-Sleep 1 }
  if (-not (Test-Path $portFile)) { Get-Content (Join-Path $work 'agent.log'); throw 'agent did not start' }
  $port = (Get-Content $portFile)[0]
  $inventory = Join-Path $work 'inventory.yaml'
  "hosts:`n  - {name: runner, address: `"127.0.0.1:$port`"}" | Set-Content $inventory

  & $labtrace start smoke --profile default --inventory $inventory
  if ($LASTEXITCODE -ne 0) { throw "labtrace start failed ($LASTEXITCODE)" }
  Start-Sleep 5
  & $labtrace stop smoke --collect (Join-Path $work 'out') --inventory $inventory
  if ($LASTEXITCODE -ne 0) { throw "labtrace stop failed ($LASTEXITCODE)" }
  $etl = Get-ChildItem -Path (Join-Path $work 'out') -Recurse -Filter '*.etl' | Select-Object -First 1
  if (-not $etl) { throw 'no .etl collected' }
  & $labtrace inspect $etl.FullName --json | Tee-Object -Variable summary
  if ($LASTEXITCODE -ne 0) { throw "labtrace inspect failed ($LASTEXITCODE)" }
  if (-not ($summary -match '"format": *"etl"')) { throw 'the collected file is not an ETL trace' }
  Write-Host "real wpr.exe: $($etl.Name), $($etl.Length) bytes"
} finally {
  Stop-Process -Id $proc.Id -ErrorAction SilentlyContinue
  Get-Content (Join-Path $work 'agent.log') -ErrorAction SilentlyContinue | Select-Object -Last 40
}

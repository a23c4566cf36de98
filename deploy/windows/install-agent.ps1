<#
.SYNOPSIS
  Installs labtrace-agent as a Windows service (run as administrator, from
  the unpacked labtrace ZIP).
.DESCRIPTION
  Copies labtrace-agent.exe and labtrace.exe to "$env:ProgramFiles\labtrace",
  puts agent.yaml into %ProgramData%\labtrace unless one is there already,
  registers the service (labtrace-agent service install, automatic start,
  restarted on failure) and starts it. -Uninstall stops the service (its
  active traces are stopped and their files kept) and removes it; the data
  dir is left alone.
.EXAMPLE
  .\install-agent.ps1
  .\install-agent.ps1 -Uninstall
#>
param([switch]$Uninstall)
$ErrorActionPreference = 'Stop'
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$dest = Join-Path $env:ProgramFiles 'labtrace'
$exe = Join-Path $dest 'labtrace-agent.exe'

if ($Uninstall) {
  & $exe service uninstall
  exit $LASTEXITCODE
}

New-Item -ItemType Directory -Force -Path $dest | Out-Null
foreach ($f in 'labtrace-agent.exe', 'labtrace.exe') {
  $src = Get-ChildItem -Path $here -Recurse -Filter $f | Select-Object -First 1
  if (-not $src) { throw "$f is not in $here" }
  Copy-Item $src.FullName $dest -Force
}
$data = Join-Path $env:ProgramData 'labtrace'
New-Item -ItemType Directory -Force -Path $data | Out-Null
$config = Join-Path $data 'agent.yaml'
if (-not (Test-Path $config)) {
  Copy-Item (Join-Path $here 'agent.yaml') $config
  Write-Host "wrote $config (edit it, then: sc stop labtrace-agent; sc start labtrace-agent)"
}
& $exe service install --config $config
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Start-Service labtrace-agent
Get-Service labtrace-agent

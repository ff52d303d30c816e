*** Settings ***
Documentation    SMART critical warnings raised on NVMe controllers (QEMU's smart_critical_warning):
...              the guest's `nvme smart-log` shows each, and the guest receives the asynchronous
...              event that announces it once SMART events are enabled (Linux enables only notice
...              events; `Watch SMART Events In Guest` adds the critical warning bits). The negative
...              proof is a controller whose SMART events were never enabled: the warning is in its
...              log, but no event comes, and the verdict says so.

Resource         ../../resources/faults.resource

Suite Setup      Launch Warning VM

Test Tags        fault    warning    vm


*** Variables ***
${VM}    ${None}


*** Test Cases ***
Guest Sees Temperature Spare And Read Only Warnings
    [Documentation]    Temperature (bit 1), spare (bit 0) and read-only (bit 3) warnings raised one
    ...    after another on nvme0: the guest's smart-log shows each and an event announced it.
    Watch SMART Events In Guest    ${VM}    nvme0
    Set SMART Critical Warning    ${VM}    nvme0    2
    Guest Should See SMART Warning    ${VM}    nvme0    temperature
    Set SMART Critical Warning    ${VM}    nvme0    3
    Guest Should See SMART Warning    ${VM}    nvme0    spare
    Set SMART Critical Warning    ${VM}    nvme0    11
    Guest Should See SMART Warning    ${VM}    nvme0    read_only
    [Teardown]    Set SMART Critical Warning    ${VM}    nvme0    0

A Warning Without Its Event Fails The Verdict
    [Documentation]    Negative proof: nvme1's SMART events were never enabled; its temperature
    ...    warning shows in smart-log but no event came, and the verdict fails naming that.
    Set SMART Critical Warning    ${VM}    nvme1    2
    Run Keyword And Expect Error
    ...    *did not see the temperature warning of 'nvme1'*critical_warning 0x02, no SMART event*
    ...    Guest Should See SMART Warning
    ...    ${VM}
    ...    nvme1
    ...    temperature
    ...    timeout=2s
    [Teardown]    Set SMART Critical Warning    ${VM}    nvme1    0


*** Keywords ***
Launch Warning VM
    [Documentation]    One VM with two controllers of one 64 MiB namespace each.
    ${vm}    Launch NVMe VM    name=warnings    size=64M    controllers=2
    VAR    ${VM}    ${vm}    scope=SUITE

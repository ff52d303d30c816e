*** Settings ***
Documentation    Bad input to the datacenter fault keywords is one clear line each, checked on one
...              single-path VM; the guest and the VM stay usable after every refusal.

Library          VmLibrary

Suite Setup      Launch Single Path VM

Test Tags        vm    acceptance    errors


*** Variables ***
${VM}    ${None}


*** Test Cases ***
Paths Of A Single Path Drive
    Run Keyword And Expect Error
    ...    'nvme0' of VM 'dc-errors' is not a path of a multi-port drive (launch it with paths=2)
    ...    All Paths Should Carry IO
    ...    ${VM}
    ...    nvme0

Unknown Controllers Are Named With Those There Are
    Run Keyword And Expect Error    VM 'dc-errors' has no NVMe controller 'nvme7' (controllers: nvme0)
    ...    Reset NVMe Controller    ${VM}    nvme7
    Run Keyword And Expect Error    VM 'dc-errors' has no NVMe controller 'nvme7' (controllers: nvme0)
    ...    Inject PCIe Error    ${VM}    nvme7

Bad Flap Cycles And Kinds
    Run Keyword And Expect Error    cycles '0' is not a whole number of 1 or more
    ...    Flap NVMe Device    ${VM}    nvme0    cycles=0
    Run Keyword And Expect Error    ValueError: Argument 'severity' got value 'bad' *
    ...    Inject PCIe Error    ${VM}    nvme0    bad
    Run Keyword And Expect Error    ValueError: Argument 'kind' got value 'power' *
    ...    Reset NVMe Controller    ${VM}    nvme0    power

A Subsystem Reset QEMU Cannot Do Is Refused By The Guest
    VAR    ${refused}    subsystem reset of 'nvme0' (nvme0) in VM 'dc-errors' failed:
    ...    Subsystem-reset: NVM Subsystem Reset not supported.    separator=${SPACE}
    Run Keyword And Expect Error    ${refused}    Reset NVMe Controller    ${VM}    nvme0    subsystem
    ${seconds}    Reset NVMe Controller    ${VM}    nvme0    controller
    Should Be True    ${seconds} < 10

Not A PCIe Error Event Or A Regular Expression
    Run Keyword And Expect Error    'later' is not a PCIe error event (use what Inject PCIe Error returned)
    ...    Guest Should Report PCIe Error    ${VM}    later
    Run Keyword And Expect Error    match '(' is not a regular expression: *
    ...    Get Guest Kernel Log    ${VM}    match=(


*** Keywords ***
Launch Single Path VM
    [Documentation]    One VM with one 64 MiB namespace.
    ${vm}    Launch NVMe VM    name=dc-errors    size=64M
    VAR    ${VM}    ${vm}    scope=SUITE

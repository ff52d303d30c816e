*** Settings ***
Documentation    An emulated drive under a VM's NVMe namespace: the guest does I/O on the model, and
...              when the drive raises a critical warning the guest's controller shows it
...              (``nvme smart-log``) until the drive clears it.

Library          DriveLibrary
Resource         ../../../resources/faults.resource

Test Tags        drive_model    vm


*** Test Cases ***
A Drive's Critical Warning Reaches The Guest And Clears
    [Documentation]    The hot drive with no throttle effect and a 70 °C critical temperature: a few
    ...    seconds of writes in the guest heat it past 70 °C (bit 1, temperature); idle, it cools
    ...    and the warning clears in the guest too.
    ${drive}    Start Emulated Drive    hot    size=64M    thermal_time_constant=1s    throttle_at=70
    ...    critical_at=70    throttle_slowdown=1
    ${vm}    Launch NVMe VM    name=drivewarn    nbd=${drive.uri}
    ${fio}    Start Fio Job On VM    ${vm}    drive/random_writes    runtime=20
    Wait Until Keyword Succeeds    15s    500ms    Guest Critical Warning Should Be    ${vm}    2
    ${events}    Get Drive Events    ${drive}    kind=critical_warning
    Should Be Equal    ${events[0].action}    begin
    Wait For Fio Job On VM    ${fio}
    Wait Until Keyword Succeeds    15s    500ms    Guest Critical Warning Should Be    ${vm}    0
    ${vm_events}    Get VM Fault Timeline    ${vm}
    Should Not Be Empty    ${vm_events}


*** Keywords ***
Guest Critical Warning Should Be
    [Documentation]    Fail unless ``nvme smart-log`` in the guest shows critical_warning ${bits}.
    [Arguments]    ${vm}    ${bits}
    Open Connection To VM    ${vm}
    TRY
        ${out}    ${rc}    Execute Command    nvme smart-log /dev/nvme0 -o json    return_rc=True
    FINALLY
        Close Connection
    END
    Should Be Equal As Integers    ${rc}    0    nvme smart-log failed in the guest: ${out}
    ${log}    Evaluate    json.loads($out)
    Should Be Equal As Integers    ${log}[critical_warning]    ${bits}
